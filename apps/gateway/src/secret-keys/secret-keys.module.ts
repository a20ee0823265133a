import { Module } from '@nestjs/common';
import { SecretKeysService } from './secret-keys.service';

/** The secret keys' start-up check and re-encryption of stored secrets under the current key. */
@Module({
  providers: [SecretKeysService],
  exports: [SecretKeysService],
})
export class SecretKeysModule {}
