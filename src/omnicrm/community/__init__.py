"""Interest communities, store events and QR check-in: social mutual aid that brings online customers offline (O2O).

- ``communities``: communities built from interests of the portrait, and their members (invited, joined, checked in);
- ``suggest``: the customers whose portrait interests match a community (set-based over the portrait snapshot);
- ``events``: events with a capacity, a sign-up window and a check-in window, and the lock that guards their seats;
- ``signups``: sign-up, the waiting list in order, cancellation that promotes the next person at once;
- ``check_in``: check-in with a ticket a clerk scans, or as a walk-in through the venue's QR code, which writes an
  identify fact so that OneID links the person;
- ``tokens``: the signed tickets and venue codes, and their QR codes (SVG);
- ``attendance``: the report per event and per community; ``people``: who a person is through OneID;
  ``throttle``: the public page's rate limit.

The submodules are imported where they are used, so that the light ones (sign-up, check-in) do not pull in the
analytic engine that ``suggest`` needs.
"""
