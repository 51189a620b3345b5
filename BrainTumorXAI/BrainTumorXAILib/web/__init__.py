"""Web viewer (trame-slicer): ``braintumorxai view``."""
