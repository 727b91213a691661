"""Campaigns: an audience from a segment snapshot, filtered by consent, caps and quiet hours, a holdout
control group, personalised messages through the channels, and measured uplift and ROI."""
