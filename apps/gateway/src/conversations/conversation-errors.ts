import { ConflictException, NotFoundException } from '@nestjs/common';

/** OpenHands answers "not found" differently per route (contract §11.6); the detail always names the id. */
export const conversationNotFound = (id: string) => new NotFoundException({ detail: `Conversation not found: ${id}` });
export const alreadyRunning = () =>
  new ConflictException({ detail: 'Conversation already running. Wait for completion or pause first.' });
