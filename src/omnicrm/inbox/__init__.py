"""The customer-service inbox: one conversation per customer across channels, agents and teams, SLAs.

The flow, module by module:

- ``senders``: the channels (WeChat OA, WeCom, Weibo, Wangwang, JD IM, SMS, email, clerk notes) and how a sender
  becomes OneID identifier keys; ``webhooks``: the channels' pushes as messages.
- ``messages.receive``: a message lands in the customer's open conversation (``contacts`` finds the customer,
  provisional when unknown; ``conversations`` holds status, priority and SLA clocks; ``assignment`` routes it).
- ``replies.reply``: an agent's answer goes out through the channel the customer last wrote from (``outbound``);
  ``messages.note``: internal notes; ``quick_replies``: texts with placeholders in zh and en.
- ``sla`` and ``hours``: targets per channel and priority on business-hours calendars; ``queue``: the live queue by
  breach risk and warnings; ``reports``: first response and resolution by agent, channel and day.
- ``facts``: messages written as facts for OneID and portraits; ``worker``: the server's background rounds.

Settings: the ``[inbox]`` table (``config``). The package imports nothing itself, so each part loads only what it
needs.
"""
