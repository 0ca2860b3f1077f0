"""``voicebot run``: starts and watches the UA workers and (with more than one) the Kamailio edge."""
