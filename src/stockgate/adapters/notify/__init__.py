"""Merchant notifications: Standard Webhooks over HTTP, and email over SMTP."""
