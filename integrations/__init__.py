"""One module per external system; each wraps its client and raises bot.errors types."""
