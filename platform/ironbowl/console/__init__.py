"""The institutions' web console: Django templates with htmx, in English and Simplified Chinese.

Every page of an organization lives under /console/{org}/ and is a `base.OrganizationPage`: it
resolves the organization, checks membership and the role's permission for the method before
anything else, and shows times in the organization's time zone. Forms validate on the server with
the API's own serializers and services (`forms.py`), so the console and the API refuse the same
input with the same words.
"""
