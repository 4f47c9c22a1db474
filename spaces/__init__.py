"""What can be searched: dimensions, distributions and search-space presets."""
