"""AI-assistant usage domain: MongoDB events and landed files -> staging -> marts -> insight indices."""
