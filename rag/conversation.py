"""What a question says about its conversation: an explicit change of topic.

"Totally unrelated: what's the email address?" is not a follow-up, however short it is and however
poorly its words match on their own: read with the previous question, it is looked up (and answered)
in the previous topic's documents. Only explicit cues count ("unrelated", "different question", "on
another note", "changing the subject", "off topic", "something else"); "also", "another question"
and "one more thing" open follow-ups as often as new topics, so they do not.
"""

from __future__ import annotations

import re

_TOPIC_SWITCH = re.compile(
    r"""
    ^\s*(?:(?:ok(?:ay)?|oh|right|alright|thanks|thank\s+you|cool|great|hi|hey|and|so|now)\b[\s,.!]*)*
    (?:(?:totally|completely|entirely|quite|somewhat|a\s+bit)\s+)?
    (?:
        unrelated(?:\s+(?:question|thing|topic|note))?
      | (?:(?:a|one|on\s+a|on\s+an)\s+)?(?:different|separate|unrelated|new)
        \s+(?:question|thing|topic|subject|matter|note)
      | on\s+(?:another|a\s+different|an\s+unrelated|a\s+separate|an\s+other)\s+(?:note|topic|subject)
      | (?:changing|switching|to\s+change)\s+(?:the\s+)?(?:subject|topics?|gears)
      | change\s+of\s+(?:subject|topic)
      | off[\s-]topic
      | something\s+(?:else|different)(?:\s+entirely)?
    )
    (?:\s*[:,.!?;\u2014\u2013-]+\s*(?:but\s+)?|\s+but\s+)
    (?P<rest>\w.*)$
    """,
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)


def new_topic(question: str) -> str | None:
    """The question without its cue when it announces a new topic ("unrelated, but how do I ...?"
    gives "how do I ...?"); ``None`` when it does not."""
    match = _TOPIC_SWITCH.match(question)
    return match.group("rest").strip() if match else None
