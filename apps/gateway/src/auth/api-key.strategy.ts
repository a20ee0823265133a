import { Injectable, UnauthorizedException } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { HeaderAPIKeyStrategy } from 'passport-headerapikey';
import type { Principal } from '../common/tenant.decorator';
import { ApiKeyService } from './api-key.service';

export const SESSION_KEY_HEADER = 'X-Session-API-Key';

@Injectable()
export class ApiKeyStrategy extends PassportStrategy(HeaderAPIKeyStrategy, 'api-key') {
  constructor(private readonly keys: ApiKeyService) {
    super({ header: SESSION_KEY_HEADER, prefix: '' }, false);
  }

  async validate(apiKey: string): Promise<Principal> {
    const principal = await this.keys.resolve(apiKey);
    if (!principal) throw new UnauthorizedException();
    return principal;
  }
}
