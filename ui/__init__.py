"""Streamlit helpers shared by the dashboard pages (outside `app_pages/`, so Streamlit never lists them as a page)."""
