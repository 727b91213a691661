"""Customer lifetime value: RFM summaries (Ibis), BG/NBD purchases and P(alive), Gamma-Gamma spend, CLV."""

from omnicrm.portrait.clv.bgnbd import BetaGeoModel, FitError
from omnicrm.portrait.clv.gamma_gamma import GammaGammaModel
from omnicrm.portrait.clv.summary import (
    calibration_and_holdout,
    calibration_and_holdout_frame,
    rfm_summary,
    rfm_summary_frame,
)

__all__ = [
    "BetaGeoModel",
    "FitError",
    "GammaGammaModel",
    "calibration_and_holdout",
    "calibration_and_holdout_frame",
    "rfm_summary",
    "rfm_summary_frame",
]
