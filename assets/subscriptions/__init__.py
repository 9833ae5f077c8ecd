"""The subscriptions platform domain (seed streaming-polyglot-platform): commands, outcomes, marts."""
