"""Loyalty: the points ledger (lots and the entries that draw from them), earn rules, tiers, the liability, coupons.

- ``ledger``: earn (lots), spend, adjust, balance, lots and history; balances are derived, never stored.
- ``draws``: how debits draw from lots (soonest-expiring first, then oldest) and how a debt is repaid.
- ``refunds``: a refund reverses the points of its order, even those already spent.
- ``lifecycle``: pending lots activate after the return window (``activate_due``), lots expire (``expire_due``).
- ``rules``: earn rules as versioned data, and the points of orders as one Ibis expression.
- ``earning``: award points for a table of orders, idempotently (replays award once).
- ``tiers``: qualification over a rolling window, upgrade at once, downgrade at period end with grace.
- ``liability``: outstanding points by expiry month, in money, and breakage.
- ``coupons``: coupon templates and single-use codes, issued to one customer or a list, within quantity and
  per-person limits.
- ``coupon_redemptions``: redeeming a code online or at the till (核销), credited to the store and its guide;
  reversal on refund; the report per template, store and guide.
- ``giveaways``: lucky draws and red-packet drops within a budget, per-person limits and a schedule, each entry drawn
  from a committed seed (``giveaway_odds``) and auditable once the seed is published (``giveaway_audit``).
- ``referrals``: the referral programme, members' codes, links and QR codes, and referrals checked through OneID
  (self-referral under two identifiers, rings, one referrer each, new customers only); ``referral_rewards``
  rewards both sides once the first paid order is past its return window, and reports per referrer.
- ``stored_value``: members' prepaid money (储值) as a ledger: top-ups (paid and bonus buckets), spends, refunds,
  refunds of top-ups and reversals, idempotent (``stored_value_ledger``: entries and buckets; ``stored_value_report``:
  the liability, paid vs bonus, and the money per store and day).
- ``locks``: how every change is one transaction holding the member's lock, on SQLite and PostgreSQL.
"""
