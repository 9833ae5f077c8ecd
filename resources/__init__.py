"""Resources: one ConfigurableResource per system the platform talks to."""
