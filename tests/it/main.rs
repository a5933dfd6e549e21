mod hook_client;
