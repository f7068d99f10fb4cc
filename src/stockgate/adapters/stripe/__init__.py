"""Payments through Stripe (or the local fake of it): the PaymentProvider adapter."""

from stockgate.adapters.stripe.payments import StripePayments, payments_from_settings

__all__ = ["StripePayments", "payments_from_settings"]
