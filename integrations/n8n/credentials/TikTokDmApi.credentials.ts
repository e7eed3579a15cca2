import type {
	IAuthenticateGeneric,
	Icon,
	ICredentialTestRequest,
	ICredentialType,
	INodeProperties,
} from 'n8n-workflow';

/**
 * The tiktok-dm gateway: its address, an API key, and (unless the key is bound
 * to an account stored in the gateway) the TikTok session to send as.
 */
export class TikTokDmApi implements ICredentialType {
	name = 'tikTokDmApi';

	displayName = 'TikTok DM API';

	icon: Icon = { light: 'file:../icons/tiktokDm.svg', dark: 'file:../icons/tiktokDm.dark.svg' };

	documentationUrl = 'https://example.invalid/tiktok-dm#n8n';

	properties: INodeProperties[] = [
		{
			displayName: 'Gateway URL',
			name: 'gatewayUrl',
			type: 'string',
			default: 'http://127.0.0.1:8787',
			placeholder: 'http://127.0.0.1:8787',
			description: 'Where `tiktok-dm serve` listens',
			required: true,
		},
		{
			displayName: 'API Key',
			name: 'apiKey',
			type: 'string',
			typeOptions: { password: true },
			default: '',
			description: 'A gateway API key (`tiktok-dm keys create`), starting with tdm_',
			required: true,
		},
		{
			displayName: 'TikTok Session',
			name: 'sessionToken',
			type: 'string',
			typeOptions: { password: true },
			default: '',
			description:
				'The TikTok session to send as: a sessionid, a Cookie header or a cookie export. Leave empty when the API key is bound to an account stored in the gateway.',
		},
	];

	authenticate: IAuthenticateGeneric = {
		type: 'generic',
		properties: {
			headers: {
				Authorization: '=Bearer {{$credentials.apiKey}}',
				'X-TikTok-Session': '={{$credentials.sessionToken}}',
			},
		},
	};

	test: ICredentialTestRequest = {
		request: {
			baseURL: '={{$credentials.gatewayUrl.replace(/\\/+$/, "")}}',
			url: '/v1/usage',
			method: 'GET',
		},
	};
}
