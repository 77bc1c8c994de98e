"""Twelve short labelled sentences (four per label) for the neural model families' contract tests."""

TEXTS = [
    "Platforms must scan every message to find child abuse material.",
    "Client-side scanning is necessary to protect children online.",
    "Companies should be forced to detect abuse images even in encrypted chats.",
    "Law enforcement needs access to messages to stop predators.",
    "End-to-end encryption protects everyone's privacy and must not be weakened.",
    "Scanning private messages breaks encryption and endangers journalists.",
    "A backdoor for the police is a backdoor for criminals too.",
    "Strong encryption keeps dissidents and ordinary people safe.",
    "The bill was debated in parliament on Tuesday.",
    "The regulator published its consultation in March.",
    "WhatsApp has about two billion users worldwide.",
    "The committee will meet again next month.",
]
LABELS_12 = ["pro-scanning"] * 4 + ["pro-encryption"] * 4 + ["neutral"] * 4
