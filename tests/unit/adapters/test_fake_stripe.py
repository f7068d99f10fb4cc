"""How the fake Stripe (localstripe) is launched: its state kept apart from other instances'."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockgate.adapters.embedded import fake_stripe
from stockgate.adapters.embedded.fake_stripe import FakeStripe


def launch(fake: FakeStripe) -> list[str]:
    return fake._command()


def test_with_namespaces_the_state_dir_becomes_its_private_tmp(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(fake_stripe, "private_tmp_supported", lambda: True)
    fake = FakeStripe(4242, tmp_path / "log", state_dir=tmp_path / "state", fresh=True)
    command = launch(fake)
    assert command[:4] == ["unshare", "--user", "--map-root-user", "--mount"]
    assert str(tmp_path / "state") in command
    assert command[-3:] == ["--port", "4242", "--from-scratch"]
    assert fake.isolated
    assert fake.state_file == tmp_path / "state" / "localstripe.pickle"


def test_without_namespaces_it_falls_back_to_the_shared_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(fake_stripe, "private_tmp_supported", lambda: False)
    fake = FakeStripe(4242, tmp_path / "log", state_dir=tmp_path / "state", fresh=True)
    command = launch(fake)
    assert command[1:3] == ["-m", "localstripe"]
    assert command[-1] == "--from-scratch"  # at least nobody else's saved state is loaded
    assert not fake.isolated
    assert fake.state_file == Path("/tmp/localstripe.pickle")


def test_only_the_first_start_of_a_fresh_fake_ignores_saved_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(fake_stripe, "private_tmp_supported", lambda: True)
    fake = FakeStripe(4242, tmp_path / "log", state_dir=tmp_path / "state", fresh=True)
    assert "--from-scratch" in launch(fake)
    fake._started = True  # what start() records
    assert "--from-scratch" not in launch(fake)  # a restart loads what it saved
