"""omnicrm: an omni-channel customer platform for merchants.

The package layout follows the flow of data: ``ingest`` → facts (``store``) → ``identity`` →
``portrait`` → ``segments`` → campaigns, loyalty, service, analytics; the faces (``api``, ``cli``)
sit on top and the domain never imports them.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
