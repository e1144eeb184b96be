"""The vision-language judge: prompts, request building (protocols), HTTP transport and reply parsing."""
