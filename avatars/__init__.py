"""The HR domain: avatars and their versions, the talent market, custom builds with consent,
positions, employments (hires), the knowledge base and performance reviews."""
