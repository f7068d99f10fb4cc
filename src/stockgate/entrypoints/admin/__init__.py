"""The admin dashboard under /admin: server-rendered pages for operators (issue 22)."""
