"""giveaways: lucky draws and red-packet drops with a budget, their prizes, packets, eligible lists and entries

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "giveaways",
        sa.Column(
            "id",
            sa.String(length=48),
            nullable=False,
            comment="the merchant's id for the giveaway, as the API names it",
        ),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False, comment="lucky_draw or red_packet"),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=False, comment="first moment an entry is taken"),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=False, comment="entries stop here (exclusive)"),
        sa.Column(
            "timezone", sa.String(length=64), nullable=False, comment="the zone whose days the per-day limit counts"
        ),
        sa.Column("budget_fen", sa.BigInteger(), nullable=False, comment="most money value ever paid out, in fen"),
        sa.Column(
            "spent_fen", sa.BigInteger(), nullable=False, comment="money value paid out so far (Σ entries' value_fen)"
        ),
        sa.Column("entry_count", sa.BigInteger(), nullable=False, comment="entries so far: the last entry's number"),
        sa.Column("miss_weight", sa.BigInteger(), nullable=False, comment="lucky draw: the weight of drawing no prize"),
        sa.Column(
            "packets", sa.Integer(), nullable=True, comment="red packet: how many packets the budget is split into"
        ),
        sa.Column(
            "point_value",
            sa.String(length=16),
            nullable=False,
            comment="money one point is worth, in yuan (decimal text)",
        ),
        sa.Column(
            "points_valid_days", sa.Integer(), nullable=True, comment="points won expire after N days; null: never"
        ),
        sa.Column(
            "per_person_daily", sa.Integer(), nullable=True, comment="most entries of one customer per day; null: any"
        ),
        sa.Column(
            "per_person_total", sa.Integer(), nullable=True, comment="most entries of one customer in all; null: any"
        ),
        sa.Column("prizes_per_person", sa.Integer(), nullable=True, comment="most prizes one customer wins; null: any"),
        sa.Column(
            "restricted", sa.Boolean(), nullable=False, comment="true: only customers in giveaway_eligible may enter"
        ),
        sa.Column(
            "seed",
            sa.String(length=64),
            nullable=False,
            comment="32 random bytes (hex); secret until the giveaway closes",
        ),
        sa.Column(
            "seed_hash",
            sa.String(length=64),
            nullable=False,
            comment="sha256 of the seed bytes: the published commitment",
        ),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True, comment="set when staff closed it early"),
        sa.Column("closed_by", sa.String(length=128), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_giveaways")),
    )
    op.create_table(
        "giveaway_eligible",
        sa.Column("giveaway_id", sa.String(length=48), nullable=False),
        sa.Column(
            "customer_id", sa.BigInteger(), autoincrement=False, nullable=False, comment="OneID customer who may enter"
        ),
        sa.ForeignKeyConstraint(
            ["giveaway_id"], ["giveaways.id"], name=op.f("fk_giveaway_eligible_giveaway_id_giveaways")
        ),
        sa.PrimaryKeyConstraint("giveaway_id", "customer_id", name=op.f("pk_giveaway_eligible")),
    )
    op.create_table(
        "giveaway_packets",
        sa.Column("giveaway_id", sa.String(length=48), nullable=False),
        sa.Column(
            "number", sa.Integer(), autoincrement=False, nullable=False, comment="1..packets: claimed in this order"
        ),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False, comment="fixed by the seed at creation; ≥ 1 fen"),
        sa.ForeignKeyConstraint(
            ["giveaway_id"], ["giveaways.id"], name=op.f("fk_giveaway_packets_giveaway_id_giveaways")
        ),
        sa.PrimaryKeyConstraint("giveaway_id", "number", name=op.f("pk_giveaway_packets")),
    )
    op.create_table(
        "giveaway_prizes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("giveaway_id", sa.String(length=48), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False, comment="1, 2, ...: the order the odds are laid out in"),
        sa.Column(
            "kind", sa.String(length=16), nullable=False, comment="points, coupon or gift (a physical gift handed out)"
        ),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("weight", sa.BigInteger(), nullable=False, comment="odds: weight / (Σ weights + miss_weight)"),
        sa.Column("points", sa.BigInteger(), nullable=True, comment="points prize: the points credited"),
        sa.Column("coupon_template_id", sa.String(length=64), nullable=True),
        sa.Column(
            "value_fen", sa.BigInteger(), nullable=False, comment="money value counted against the budget, in fen"
        ),
        sa.Column(
            "stock",
            sa.BigInteger(),
            nullable=True,
            comment="most of this prize ever given; null: only the budget limits",
        ),
        sa.Column("awarded", sa.BigInteger(), nullable=False, comment="how many were given so far"),
        sa.ForeignKeyConstraint(
            ["coupon_template_id"],
            ["coupon_templates.id"],
            name=op.f("fk_giveaway_prizes_coupon_template_id_coupon_templates"),
        ),
        sa.ForeignKeyConstraint(
            ["giveaway_id"], ["giveaways.id"], name=op.f("fk_giveaway_prizes_giveaway_id_giveaways")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_giveaway_prizes")),
        sa.UniqueConstraint("giveaway_id", "position", name=op.f("uq_giveaway_prizes_giveaway_id_position")),
    )
    op.create_table(
        "giveaway_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("giveaway_id", sa.String(length=48), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False, comment="the entry's number in its giveaway: 1, 2, ..."),
        sa.Column("customer_id", sa.BigInteger(), nullable=False, comment="OneID customer"),
        sa.Column(
            "idempotency_key", sa.String(length=255), nullable=False, comment="a retried request finds its entry"
        ),
        sa.Column("day", sa.Date(), nullable=False, comment="the day of the entry in the giveaway's time zone"),
        sa.Column(
            "draw", sa.String(length=64), nullable=True, comment="lucky draw: HMAC-SHA256(seed, id|seq|customer) in hex"
        ),
        sa.Column(
            "chosen_prize_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
            comment="what the odds chose",
        ),
        sa.Column(
            "prize_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
            comment="what was given; null: none",
        ),
        sa.Column("packet", sa.Integer(), nullable=True, comment="red packet: the packet number claimed"),
        sa.Column(
            "outcome",
            sa.String(length=16),
            nullable=False,
            comment="won, miss, or no_stock / no_budget (chosen, not given)",
        ),
        sa.Column("value_fen", sa.BigInteger(), nullable=False, comment="money value given (0 when nothing)"),
        sa.Column("points", sa.BigInteger(), nullable=True, comment="points credited, if any"),
        sa.Column(
            "lot_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
            comment="the points lot that paid it",
        ),
        sa.Column(
            "coupon_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
            comment="the coupon that paid it",
        ),
        sa.Column("entered_by", sa.String(length=128), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["chosen_prize_id"],
            ["giveaway_prizes.id"],
            name=op.f("fk_giveaway_entries_chosen_prize_id_giveaway_prizes"),
        ),
        sa.ForeignKeyConstraint(["coupon_id"], ["coupons.id"], name=op.f("fk_giveaway_entries_coupon_id_coupons")),
        sa.ForeignKeyConstraint(
            ["giveaway_id"], ["giveaways.id"], name=op.f("fk_giveaway_entries_giveaway_id_giveaways")
        ),
        sa.ForeignKeyConstraint(["lot_id"], ["point_lots.id"], name=op.f("fk_giveaway_entries_lot_id_point_lots")),
        sa.ForeignKeyConstraint(
            ["prize_id"], ["giveaway_prizes.id"], name=op.f("fk_giveaway_entries_prize_id_giveaway_prizes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_giveaway_entries")),
        sa.UniqueConstraint(
            "giveaway_id", "idempotency_key", name=op.f("uq_giveaway_entries_giveaway_id_idempotency_key")
        ),
        sa.UniqueConstraint("giveaway_id", "seq", name=op.f("uq_giveaway_entries_giveaway_id_seq")),
    )
    with op.batch_alter_table("giveaway_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_giveaway_entries_giveaway_id_customer_id_day"),
            ["giveaway_id", "customer_id", "day"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("giveaway_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_giveaway_entries_giveaway_id_customer_id_day"))

    op.drop_table("giveaway_entries")
    op.drop_table("giveaway_prizes")
    op.drop_table("giveaway_packets")
    op.drop_table("giveaway_eligible")
    op.drop_table("giveaways")
