"""Consumer portrait: tags per customer computed from facts (RFM, lifecycle, CLV, ...)."""
