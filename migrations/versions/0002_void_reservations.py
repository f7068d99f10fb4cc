"""void reservations: a fence for holds that never became durable

Revision ID: 0002
Revises: 0001

A `void` row claims a reservation id whose gate hold was (or is being) given back before its
row was written. The journal inserts with ON CONFLICT DO NOTHING, so a late write of that id
can no longer commit: see docs/decisions/0005-void-fence.md.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CONSTRAINT = "ck_reservations_status_known"


def upgrade() -> None:
    op.drop_constraint(op.f(CONSTRAINT), "reservations", type_="check")
    # NOT VALID: no scan of the table under its exclusive lock. The new list only adds a value,
    # so every existing row, checked by the old constraint, satisfies it already.
    op.execute(
        f"ALTER TABLE reservations ADD CONSTRAINT {CONSTRAINT} "
        "CHECK (status IN ('active', 'released', 'expired', 'converted', 'void')) NOT VALID"
    )


def downgrade() -> None:
    op.execute("DELETE FROM reservations WHERE status = 'void'")
    op.drop_constraint(op.f(CONSTRAINT), "reservations", type_="check")
    op.create_check_constraint(
        op.f(CONSTRAINT),
        "reservations",
        "status IN ('active', 'released', 'expired', 'converted')",
    )
