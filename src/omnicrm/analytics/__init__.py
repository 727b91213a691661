"""Analytics: repeat purchase, promotion-cohort retention, RFM grid, CLV distribution, channel mix, OneID."""
