"""Message catalogues, one module per language: ``MESSAGES`` maps a key to a ``str.format`` template."""
