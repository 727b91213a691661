"""Ground truth for campaign measurement: a population whose response to a campaign is known exactly.

Each person has a baseline probability of buying within the attribution window (heterogeneous: Beta-distributed
around ``baseline``), a mean order value of their own (log-normal), and whether the channel can reach them at all
(an address that works). A send that reaches them adds a personal effect to their probability: the channel's effect
(``CHANNEL_EFFECTS``, e.g. e-mail +0.5 points) times a Gamma(2, ½) factor of mean 1, so some people respond much more
than others. A random holdout is drawn, the treatment arm is sent, and conversions, orders and their values are
drawn. Some people also buy outside the window (before the launch or after the window): orders a measurement must
leave out.

The truth returned is the population's average intent-to-treat effect: the mean over everyone of (reachable ×
(p₁ − p₀)) for conversion, and of that times the expected revenue of a converter for revenue per person. That is
what the difference between a random treatment arm and a random holdout estimates, so a 95% interval for it should
cover the truth in about 95 campaigns of 100. Everything is vectorised numpy and reproducible from the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["CHANNEL_EFFECTS", "SimulatedCampaign", "simulate_campaign"]

# the true effect of a delivered message on the probability of buying within the window, by channel
CHANNEL_EFFECTS: dict[str, float] = {"email": 0.005, "sms": 0.010, "wechat": 0.020, "push": 0.0}
DELIVERY_RATES: dict[str, float] = {"email": 0.85, "sms": 0.95, "wechat": 0.90, "push": 0.70}
EXTRA_ORDERS = 0.3  # a converter places 1 + Poisson(0.3) orders in the window
DAY = 86_400


@dataclass(frozen=True)
class SimulatedCampaign:
    """One simulated campaign: per person (index = person), the arm, the send and the outcome in the window; per
    order, whose it is, its value (to the cent) and its time in seconds from the launch; and the truth."""

    channel: str
    window_days: int
    treated: NDArray[np.bool_]  # treatment arm (else holdout)
    delivered: NDArray[np.bool_]  # the send reached them (treatment arm only)
    converted: NDArray[np.bool_]  # bought in the window
    revenue: NDArray[np.float64]  # spent in the window
    order_person: NDArray[np.int64]
    order_value: NDArray[np.float64]
    order_seconds: NDArray[np.int64]  # from the launch; outside [0, window) for orders out of the window
    true_effect: float  # average intent-to-treat effect on the conversion rate
    true_revenue_effect: float  # and on revenue per person
    baseline_rate: float  # mean baseline probability of buying in the window

    @property
    def people(self) -> int:
        return int(self.treated.size)

    @property
    def in_window(self) -> NDArray[np.bool_]:
        return (self.order_seconds >= 0) & (self.order_seconds < self.window_days * DAY)


def simulate_campaign(
    seed: int | np.random.Generator,
    *,
    people: int = 20_000,
    channel: str = "email",
    effect: float | None = None,
    holdout_share: float = 0.1,
    baseline: float = 0.04,
    window_days: int = 14,
    outside_rate: float = 0.05,
) -> SimulatedCampaign:
    """Simulate one campaign over ``people`` people on ``channel`` (its effect from ``CHANNEL_EFFECTS`` unless
    ``effect`` is given); ``outside_rate`` of the people also buy once outside the window."""
    if channel not in CHANNEL_EFFECTS and effect is None:
        raise ValueError(f"unknown channel {channel!r}; use one of {', '.join(CHANNEL_EFFECTS)} or give an effect")
    if not 0 < holdout_share < 1 or people < 2:
        raise ValueError("holdout_share must be between 0 and 1 and people at least 2")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    lift = CHANNEL_EFFECTS[channel] if effect is None else effect
    concentration = 8.0  # Beta(a, b) with a + b = 8: wide differences between people
    p0 = rng.beta(baseline * concentration, (1 - baseline) * concentration, people)
    p1 = np.clip(p0 + lift * rng.gamma(2.0, 0.5, people), 0.0, 1.0)
    reachable = rng.random(people) < DELIVERY_RATES.get(channel, 0.9)
    mean_value = np.round(np.exp(rng.normal(np.log(250.0), 0.5, people)), 2)
    # expected revenue of a converter: (1 + EXTRA_ORDERS) orders of mean_value on average
    per_converter = (1 + EXTRA_ORDERS) * mean_value

    treated = rng.random(people) >= holdout_share
    delivered = treated & reachable
    p = np.where(delivered, p1, p0)
    converted = rng.random(people) < p

    buyers = np.flatnonzero(converted)
    counts = 1 + rng.poisson(EXTRA_ORDERS, buyers.size)
    owner = np.repeat(buyers, counts)
    sigma = 0.4  # order values around the person's mean, mean-preserving
    value = np.round(mean_value[owner] * rng.lognormal(-sigma * sigma / 2, sigma, owner.size), 2)
    value = np.maximum(value, 0.01)
    seconds = rng.integers(0, window_days * DAY, owner.size)

    outside = np.flatnonzero(rng.random(people) < outside_rate)
    before = rng.random(outside.size) < 0.5
    out_seconds = np.where(
        before, -rng.integers(1, 30 * DAY, outside.size), window_days * DAY + rng.integers(0, 30 * DAY, outside.size)
    )
    out_value = np.round(mean_value[outside], 2)

    revenue = np.bincount(owner, weights=value, minlength=people).astype(np.float64)
    tau = np.where(reachable, p1 - p0, 0.0)
    return SimulatedCampaign(
        channel=channel,
        window_days=window_days,
        treated=treated,
        delivered=delivered,
        converted=converted,
        revenue=revenue,
        order_person=np.concatenate([owner, outside]).astype(np.int64),
        order_value=np.concatenate([value, out_value]),
        order_seconds=np.concatenate([seconds, out_seconds]).astype(np.int64),
        true_effect=float(tau.mean()),
        true_revenue_effect=float((tau * per_converter).mean()),
        baseline_rate=float(p0.mean()),
    )
