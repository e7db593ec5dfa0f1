"""click commands, grouped by concern; ``cli.py`` assembles them. Bodies only parse options and call
library functions (``pipeline`` and the packages)."""
