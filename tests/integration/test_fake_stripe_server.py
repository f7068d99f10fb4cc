"""The fake Stripe server's instances keep their state apart (several run on one machine)."""

from __future__ import annotations

import uuid

import pytest

from stockgate.adapters.embedded.fake_stripe import FakeStripe
from stockgate.domain.errors import PaymentIntentNotFound
from tests.fake_stripe_server import payments_for, running_fake_stripe


async def test_two_fakes_do_not_see_each_others_intents(fake_stripe: FakeStripe) -> None:
    with running_fake_stripe() as other:
        mine, theirs = payments_for(fake_stripe), payments_for(other)
        for one, another in ((mine, theirs), (theirs, mine)):
            intent = await one.create_intent(
                order_id=uuid.uuid4(), amount_cents=100, currency="usd", customer_id=uuid.uuid4()
            )
            with pytest.raises(PaymentIntentNotFound):
                await another.get_intent(intent.id)
        await mine.close()
        await theirs.close()
        if other.isolated:  # its state went to its own directory, not the shared file
            assert other.state_dir is not None
            assert (other.state_dir / "localstripe.pickle").exists()
