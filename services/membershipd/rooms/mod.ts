// Rooms' keys and encrypted messages: the handlers and the message streams they use.
export { roomKeyHandlers } from "./actions.ts";
export { RoomMessages, roomStream } from "./messages.ts";
