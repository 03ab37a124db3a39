"""A Django project serving django-oauth-toolkit, for the preset's live tests."""
