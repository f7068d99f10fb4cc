"""Socket.IO: live stock for watchers, served by the API process at `/socket.io/`."""
