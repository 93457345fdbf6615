"""One module per /milvus subcommand; each registers itself with bot.registry."""
