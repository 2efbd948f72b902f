"""Delivering the instructions by email, as plain functions any front end can call.

``settings`` reads the clinic's ``[smtp]`` and ``[email]`` tables, ``compose`` builds one
patient's message (the PDF, protected if the clinic asks, and an .ics of the dates), ``smtp``
sends it, ``sent`` is the clinic's record of what went. The email *channel* (the audit records,
the once-only rule, ``email_instructions``) is ``discharge/channels/email.py``.

Import from the module itself (``from discharge.delivery.smtp import Mailer``): this package
imports none of them, so that checking a settings file with an ``[smtp]`` section (which loads
``settings``) does not load the message, calendar and SMTP code every command would then pay for.
"""
