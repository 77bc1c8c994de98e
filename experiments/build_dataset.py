"""Rebuild the sentence table from seeds/ and data/, check every label, print the summary."""

from stance.data.build import build, format_summary

if __name__ == "__main__":
    print(format_summary(build()))
