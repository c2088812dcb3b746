// Runs once, when the mongo container starts on an empty data volume (docker-entrypoint-initdb.d),
// as the root user: creates the application user of the session archive, SCRAM-SHA-256 only,
// with read/write on its own database and nothing else. Credentials come from the environment.
const dbName = process.env.MONGO_APP_DB;
const user = process.env.MONGO_APP_USER;
const password = process.env.MONGO_APP_PASSWORD;
if (!dbName || !user || !password) {
  throw new Error("MONGO_APP_DB, MONGO_APP_USER and MONGO_APP_PASSWORD must be set (see .env.example)");
}
const appDb = db.getSiblingDB(dbName);
if (appDb.getUser(user) === null) {
  appDb.createUser({
    user: user,
    pwd: password,
    roles: [{ role: "readWrite", db: dbName }],
    mechanisms: ["SCRAM-SHA-256"],
  });
  print(`created user ${user} on database ${dbName} (SCRAM-SHA-256)`);
}
