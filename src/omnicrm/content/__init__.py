"""Content sharing: a library of articles, lectures and videos (by link) with tracked views that feed the portrait's
interests, and recommendations of content to segments.

- ``library``: the items, their interest topics (checked against the shipped taxonomy, or found in the title and
  summary by ``portrait.interests``), status and publish dates.
- ``links``: signed ``/c/{token}`` links per item, per customer and per share.
- ``views``: a view recorded and written to the facts as a ``Content Viewed`` event, then the redirect.
- ``report``: views, unique viewers and shares per item, channel and day.
- ``recommend``: published items ranked for a segment's members, and each person's top items.
"""
