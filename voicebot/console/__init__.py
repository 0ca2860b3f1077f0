"""The admin web console `voicebot run` serves: live calls, recent calls, dialplan versions, the report.

auth (pure: passwords, roles, the login limit) -> store (users, sessions, audit in the database) ->
live (the calls up now, from the UA workers' status files) -> views (what each page shows) -> app
(aiohttp routes, sessions, CSRF, headers) -> server (started and stopped by the supervisor).
"""
