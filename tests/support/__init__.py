"""Helpers shared by the tests: tiny runs, dashboard run folders, pages, feature stores, datasets."""
