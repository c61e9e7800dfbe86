"""Placeholder, replaced by the Flickr8k loader."""
