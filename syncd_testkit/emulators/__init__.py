"""In-process emulators of the providers' HTTP APIs (Google Calendar, Microsoft Graph and its
identity platform, Pipedrive), each served on a free loopback port."""
