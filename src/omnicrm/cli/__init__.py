"""The command line (Typer): ``omnicrm demo | serve | import | load | simulate | sources | ...``."""
