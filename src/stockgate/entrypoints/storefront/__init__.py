"""The buyer's storefront page at `/`: server-rendered templates, htmx and small scripts that
use only the public HTTP API and Socket.IO."""
