"""The monthly report's page (红黑榜): its HTML and SVG charts, its PDF, its page shell."""
