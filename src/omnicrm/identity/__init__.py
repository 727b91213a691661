"""OneID: one customer across every channel, explainable and reversible."""
