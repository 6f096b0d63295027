"""reflectopt: place a passive radio reflector so the worst-covered target gets the most signal."""

__version__ = "0.1.0"
