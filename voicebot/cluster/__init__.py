"""Several voicebot nodes behind one SIP edge: nodes announce their UA workers in the database
(member.py), the edge (``voicebot edge``) follows the table and dispatches to them (tracker.py,
edge_node.py)."""
