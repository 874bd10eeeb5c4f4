"""Private implementation of jaxinit. Import from ``jaxinit`` instead."""
