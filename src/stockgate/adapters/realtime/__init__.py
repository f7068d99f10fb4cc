"""Live stock: coalesced `stock` updates sent to Socket.IO watchers through Redis."""
