/**
 * The SDK's CustomSecretsSection: the `<CUSTOM_SECRETS>` block of the system prompt's dynamic
 * context, naming the conversation's secrets (never their values) and how the terminal uses them.
 */
export function customSecretsSection(secrets: Record<string, { description?: string | null }>): string | null {
  const names = Object.entries(secrets);
  if (!names.length) return null;
  const lines = names.map(([name, s]) => `\n* **$${name}**${s.description ? ` - ${s.description}` : ''}\n`).join('');
  return (
    '<CUSTOM_SECRETS>\n' +
    '### Credential Access\n' +
    '* Automatic secret injection: When you reference a registered secret key in your bash command, the secret value will be automatically exported as an environment variable before your command executes.\n' +
    '* How to use secrets: Simply reference the secret key in your command (e.g., `curl -H "Authorization: Bearer $API_KEY" https://api.example.com`). The system will detect the key name in your command text and export it as environment variable before it executes your command.\n' +
    '* Secret detection: The system performs case-insensitive matching to find secret keys in your command text. If a registered secret key appears anywhere in your command, its value will be made available as an environment variable.\n' +
    '* Security: Secret values are automatically masked in command output to prevent accidental exposure. You will see `<secret-hidden>` instead of the actual secret value in the output.\n' +
    '* Avoid exposing raw secrets: Never echo or print the full value of secrets (e.g., avoid `echo $SECRET`). The conversation history may be logged or shared, and exposing raw secret values could compromise security. Instead, use secrets directly in commands where they serve their intended purpose (e.g., in curl headers or git URLs).\n' +
    '* Refreshing expired secrets: Some secrets (like GITHUB_TOKEN) may be updated periodically or expire over time. If a secret stops working (e.g., authentication failures), try using it again in a new command - the system should automatically use the refreshed value. For example, if GITHUB_TOKEN was used in a git remote URL and later expired, you can update the remote URL with the current token: `git remote set-url origin https://${GITHUB_TOKEN}@github.com/username/repo.git` to pick up the refreshed token value.\n' +
    '* If it still fails, report it to the user.\n' +
    '\n' +
    'You have access to the following environment variables\n' +
    `${lines}\n` +
    '</CUSTOM_SECRETS>'
  );
}
