"""milvus-chatops: Slack ChatOps for Milvus."""
