"""Consent: who may be sent what, on which channel, for which purpose — and opt-outs that act at once.

Consent belongs to an address (an identifier key as OneID writes it, e.g. ``phone::+8613800138000``,
``email::a@b.cn``, ``wechat_openid:<appid>:<openid>``), not to a customer id, so it survives OneID
merges and splits. The ledger is append-only; the current state of (subject, channel, purpose) is
its latest record.

- ``subjects``: channels, purposes, sources and the identifier keys each channel delivers to.
- ``ledger``: record grants and withdrawals, read current states and history.
- ``personalisation``: the "non-personalised marketing only" choice (PIPL art. 24).
- ``replies``: SMS replies that opt out ("T", "TD", "退订", ...).
- ``unsubscribe``: signed unsubscribe-link tokens (List-Unsubscribe, RFC 8058).
- ``wechat``: WeChat server signatures and unsubscribe events.
- ``audience``: set-based "who may receive this now" over an identity snapshot.
"""
